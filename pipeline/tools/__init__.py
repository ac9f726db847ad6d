"""Tools around the pipeline: run planner, reports with plots, demo-corpus generator. Nothing imports them."""
