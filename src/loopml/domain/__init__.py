"""The domain: entities, value objects and rules of loopml. Standard library only, no I/O."""
