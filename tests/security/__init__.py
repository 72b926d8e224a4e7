"""Each point of issue 16 as a test that fails without its fix."""
