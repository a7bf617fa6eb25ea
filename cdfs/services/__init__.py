"""The services the tree maps onto, each over the content/ and runtime/ pieces it
serves: namespaced where the lower layer is shared, async over worker threads."""
