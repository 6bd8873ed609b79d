"""Node-side data plane: the XDP responder, the packet module and netlink helpers."""
