"""An OCI distribution v2 client: resolve, pull and push images to registries."""
