"""Evaluation stage: metrics, tables and the report."""
