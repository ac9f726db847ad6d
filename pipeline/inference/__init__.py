"""Using a trained model: load, evaluate, generate, serve."""
