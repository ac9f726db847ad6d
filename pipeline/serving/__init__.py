"""Using a trained model: generation and the chat page."""
