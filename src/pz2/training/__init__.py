"""Fine-tuning: the conversation-type classifier, the unified model and the specialists."""
