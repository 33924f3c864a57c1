"""Errors whose message is meant for the user: short, no traceback. Each stage subclasses UserError."""


class UserError(Exception):
    pass


def is_user_error(e: BaseException) -> bool:
    return isinstance(e, UserError)
