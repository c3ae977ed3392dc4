"""The model's one error: input it cannot model, in a sentence the user can act on."""


class ModelError(ValueError):
    """A pod, probe or option the model refuses; the message is the whole story."""
