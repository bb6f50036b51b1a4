"""What runs at answer time: the classifier, and later the router and the specialist pool."""
