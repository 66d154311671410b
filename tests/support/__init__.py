"""Helpers shared by the test folders, each written once.

- :mod:`tests.support.controllers`: hand-written policies that solve CartPole and Pendulum.
- :mod:`tests.support.datasets`: real-env datasets written with the workflow's DatasetWriter.
- :mod:`tests.support.model_folders`: a tiny trained DM folder, a tiny Qwen3 training command.
- :mod:`tests.support.tiny_models`: DM and Qwen3 shapes small enough to train on a CPU thread.
- :mod:`tests.support.workflow`: workflow copies and Snakemake runs in a temporary folder,
  and what a dry run plans.
"""
