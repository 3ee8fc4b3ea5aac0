"""Model output is untrusted: whatever it contains, nothing active may reach a cell or a widget."""

from html.parser import HTMLParser

import pytest
from xss import active_content

from nbsessions.presentation.render import format_footer, markdown_to_html, reply_bundle
from nbsessions.records.schema import Metrics, RunOutput, RunStatus

PAYLOADS = [
    "<script>window.__xss=1</script>",
    '<img src=x onerror="window.__xss=1">',
    "[click](javascript:alert(1))",
    '<a href="javascript:alert(1)">x</a>',
    '<a href="JaVaScRiPt:alert(1)">x</a>',
    '<svg onload="alert(1)"><circle r=1></svg>',
    '<iframe src="https://example.com"></iframe>',
    '<div style="background:url(https://example.com/leak)" onmouseover="x()">hover</div>',
    "![exfiltrate](https://example.com/?q=secret)",
    '<form action="https://example.com"><input name=a></form>',
]


@pytest.mark.parametrize("payload", PAYLOADS)
def test_no_payload_survives_as_active_html(payload):
    html = markdown_to_html(f"Here you go:\n\n{payload}\n\nand **bold** text")
    assert active_content(html) == []
    assert "<strong>bold</strong>" in html


def test_the_checker_itself_sees_active_content():
    assert active_content('<img src=x onerror="a()">') == ["<img>", "img[src=x]", "img[onerror]"]
    assert active_content('<a href="java\tscript:x">y</a>') == ["a[href=java\tscript:x]"]
    assert active_content('<span class="jp-Dialog">y</span>') == ["span[class=jp-Dialog]"]
    assert active_content('<code class="language-py">y</code> <a href="https://x">z</a>') == []


def test_formatting_code_tables_and_links_keep_working():
    html = markdown_to_html(
        "# Title\n\n*it* and `code`\n\n```python\nif a < b:\n    pass\n```\n\n"
        "| a | b |\n|---|--:|\n| 1 | 2 |\n\n[docs](https://example.com/x) - item\n\n1. one\n2. two\n"
    )
    for fragment in ("<h1>Title</h1>", "<em>it</em>", ">code</code>", 'editor-keyword-color)">if</span>',
                     "&lt;</span>", "<table>", "<td", "<ol>", "<li>one</li>"):
        assert fragment in html
    assert 'href="https://example.com/x"' in html and "noopener" in html


def test_markdown_images_become_links_that_load_nothing():
    html = markdown_to_html("![chart](https://example.com/c.png)")
    assert "<img" not in html
    assert 'href="https://example.com/c.png"' in html and "[image: chart]" in html


def test_reply_bundle_has_no_markdown_mime_and_escapes_the_footer():
    run = RunOutput(session_id="s", model="<b>m</b>", status=RunStatus.completed, content="<script>x</script>hi",
                    metrics=Metrics(input_tokens=3, output_tokens=4, time_to_first_token=0.25, duration=1.5,
                                    cost=0.0012))
    bundle = reply_bundle(run, session_label="<i>chat</i>")
    assert set(bundle) == {"text/html", "text/plain"}
    assert active_content(bundle["text/html"]) == []
    assert "&lt;b&gt;m&lt;/b&gt;" in bundle["text/html"] and "&lt;i&gt;chat&lt;/i&gt;" in bundle["text/html"]
    assert bundle["text/plain"].startswith("<script>x</script>hi")
    streaming = reply_bundle(run)
    assert "nbsessions-footer" not in streaming["text/html"]


def test_footer_reads_model_session_tokens_latency_cost():
    run = RunOutput(session_id="s", model="gpt-5.2", status=RunStatus.completed,
                    metrics=Metrics(input_tokens=12, output_tokens=40, time_to_first_token=0.31, duration=1.2,
                                    cost=0.0006))
    assert format_footer(run, "my chat") == "gpt-5.2 · my chat · 12 in / 40 out tokens · TTFT 310 ms · 1.20 s · $0.0006"
    run.metrics.cost = None
    run.status, run.error = RunStatus.error, "429 rate limited"
    assert format_footer(run, "c").endswith("cost n/a · error: 429 rate limited")


def test_costs_are_plain_decimals_with_one_spelling_for_unknown():
    from nbsessions.records import formatting as fmt

    assert fmt.cost(1.45e-05) == "$0.0000145"
    assert fmt.cost(0.00000012345) == "$0.000000123"
    assert fmt.cost(0.0041) == "$0.0041" and fmt.cost(0) == "$0.0000" and fmt.cost(12.5) == "$12.5000"
    assert "e-" not in fmt.cost(3e-9)
    assert fmt.cost(None) == fmt.UNKNOWN_COST == "cost n/a"


def test_shorten_cuts_at_a_word_and_never_returns_only_the_ellipsis():
    from nbsessions.records import formatting as fmt

    assert fmt.shorten("a  b\n c", 10) == "a b c"
    assert fmt.shorten("one two three four", 12) == "one two…"
    assert fmt.shorten("x" * 50, 10) == "x" * 9 + "…"
    assert fmt.shorten("ab " + "x" * 50, 10) == "ab xxxxxx…"  # a word cut would keep only "ab…"


def test_footer_marks_estimated_token_counts_with_a_tilde():
    run = RunOutput(session_id="s", model="m", status=RunStatus.completed,
                    metrics=Metrics(input_tokens=31, output_tokens=5, tokens_estimated=True))
    assert " · ~31 in / ~5 out tokens · " in format_footer(run, "c")
    run.metrics.tokens_estimated = False
    assert " · 31 in / 5 out tokens · " in format_footer(run, "c")


def test_token_counts_read_the_same_on_every_surface():
    """Footer (cell and command line), `%agent metrics`, context view and panel once disagreed: 12345 vs 12,345."""
    from nbsessions.presentation.render_context import context_text
    from nbsessions.records import formatting as fmt
    from nbsessions.runs.core.inspect_context import SentContext, SentMessage
    from nbsessions.runs.printing import footer as printed_footer

    run = RunOutput(session_id="s", model="m", status=RunStatus.completed,
                    metrics=Metrics(input_tokens=12345, output_tokens=6789, total_tokens=19134))
    assert fmt.tokens(12345) == "12,345" and fmt.tokens(12345, estimated=True) == "~12,345"
    assert " · 12,345 in / 6,789 out tokens · " in format_footer(run, "c")
    assert "12,345 in / 6,789 out" in printed_footer(run)
    ctx = SentContext(session_id="s", run_id="r", model="m", provider="p", tokens_estimated=False,
                      messages=[SentMessage(part="prompt", role="user", content="x", tokens=12345)])
    assert "12,345 tokens" in context_text(ctx)


def test_code_blocks_are_highlighted_with_the_editor_colours_of_the_theme():
    out = markdown_to_html("```python\ndef f(x):\n    return 'hi'  # note\n```\n\nand `inline`")
    assert '<span style="color:var(--jp-mirror-editor-keyword-color)">def</span>' in out
    assert '<span style="color:var(--jp-mirror-editor-comment-color)"># note</span>' in out
    assert '<pre style="background:var(--jp-cell-editor-background' in out and "padding:6px 10px" in out
    assert '<code style="background:var(--jp-cell-editor-background' in out  # inline code too
    assert "nbs-" not in out and "url(" not in out
    assert markdown_to_html("```nosuchlanguage\n<b>x</b>\n```").endswith("<code>&lt;b&gt;x&lt;/b&gt;\n</code></pre>\n")


def test_raw_html_in_a_reply_is_shown_as_text_and_no_foreign_class_survives():
    out = markdown_to_html('Wrap it in <div class="jp-Dialog">a div</div>.\n\n```jp-Dialog\ncode\n```\n\n'
                           '<span class="jp-Dialog nbs-k">s</span>')
    assert '&lt;div class="jp-Dialog"&gt;a div&lt;/div&gt;' in out  # shown as the text it is

    class Classes(HTMLParser):
        found: list = []

        def handle_starttag(self, tag, attrs):
            self.found += [value for name, value in attrs if name == "class"]

    parser = Classes()
    parser.feed(out)
    assert parser.found == []  # neither raw HTML nor a fence's info string brings a class onto an element
    assert active_content(out) == []
