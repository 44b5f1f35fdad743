"""Tests of the model compiler: sources, pipeline, bundle runtime and command line."""
