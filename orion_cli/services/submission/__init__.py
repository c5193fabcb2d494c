"""Turn a request into recorded, dispatched jobs: inputs, staging, packing, scripts, adopt."""
