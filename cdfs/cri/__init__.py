"""`cdfs cri`: a CRI v1 server (kubelet's and crictl's runtime API) over the mounted tree.

It is a client of the tree like the `cdfs` command: every call is plain file I/O on
the mount (cdfs.client.tree), and what CRI must remember lives in the tree too, so
the server keeps no state of its own and survives restarts. Layout: api/ (the proto
and its generated stubs), server.py (the gRPC server and the composed services),
errors.py (tree refusals to gRPC codes), runtime.py (Version, Status, RuntimeConfig),
sandboxes.py, containers.py, streaming/ and images.py (one mixin or servicer each);
labels.py and sandbox_record.py (CRI facts kept in tree labels), pause/ (the pods'
pause program and image).
"""
