"""TuneBoard's web front: one module per tab, locales, and the runner that starts engine processes."""
