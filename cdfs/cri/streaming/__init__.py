"""Exec, Attach and PortForward: the RPCs (calls.py) hand out single-use URLs of a
streaming server (server.py) that speaks kubelet's protocols over SPDY/3.1: the
frames (spdy.py), a connection's streams (session.py), remotecommand for exec and
attach and portforward on top, and what they reach in the tree (backend.py,
programs.py, netdial.py). docs/kubernetes.md tells how it is used."""
