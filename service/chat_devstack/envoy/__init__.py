"""The pieces of the Envoy gateway config; assembled (and the CLI) in chat_devstack.envoy_config."""
