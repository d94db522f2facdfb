"""Turning a library's deep exception into one line for a message that says what to do."""


def brief(e: BaseException, limit: int = 300) -> str:
  """``'TypeName: first line of the message'`` (at most ``limit`` characters of the message).

  >>> brief(ValueError("bad shape\\n  long details..."))
  'ValueError: bad shape'
  """
  text = str(e).strip()
  return f"{type(e).__name__}: {text.splitlines()[0][:limit]}" if text else type(e).__name__
