"""The `coach` command line: one user of the core library, like the bot and the evals."""
