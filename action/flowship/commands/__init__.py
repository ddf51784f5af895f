"""One module per subcommand; each exposes `run(config, args) -> int`.

`run` is the only place that reads the argparse namespace: it turns the
flags into typed values and calls functions that take what they need.
"""
