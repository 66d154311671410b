"""Tests of workflow_scripts/experts/."""
