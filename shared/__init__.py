"""Code both the gateway and the worker import: the wire protocol, configuration, the model registry."""
