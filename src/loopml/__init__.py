"""loopml: the loop of a model's life in one package."""
