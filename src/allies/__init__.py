"""allies: the API and support toolkit for a network of allies (merchant stores)."""
