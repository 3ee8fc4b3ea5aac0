"""How records read to people: Markdown and HTML rendering, prompt templates, highlighting, exports.

Used by the surfaces (``magic/``, ``panel/``, ``explore/``, the CLI); never by the run engine below.
"""
