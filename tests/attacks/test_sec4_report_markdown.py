"""Fourth security review, second round: the Markdown report carried the bundle's text as Markdown.

The HTML report escapes every string it takes from the manifest, but the Markdown one wrote them as they are:
a source named `<script>alert(1)</script><img src=x onerror=...>` (provenance.source.name), a target
description or a node name reached report.md as raw HTML, which Markdown viewers render, and `![](URL)` as a
remote image. Now every text is escaped: it shows as the characters it holds."""

import re

from bundles import edit_manifest
from conftest import write

from edgepack.packager.report import write_report

HOSTILE = "<script>alert(1)</script><img src=x onerror=alert(2)>![beacon](http://example.invalid/x.png)"


def test_manifest_text_in_the_markdown_report_is_not_markup(tmp_path, mlp_bundle):
    data, _ = mlp_bundle

    def edit(m):
        m["provenance"]["source"]["name"] = HOSTILE
        m["target"]["description"] = HOSTILE + "\n# heading"
        m["report"]["warnings"] = [HOSTILE]

    path = write(tmp_path, edit_manifest(data, edit))
    text = write_report(str(path), str(tmp_path / "r.md"), "md", measure=False)
    assert "<script>" not in text and "<img" not in text and not re.search(r"(?<!\\)\]\(http", text)
    assert "\n# heading" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text and "!\\[beacon\\](http://example.invalid/x.png)" in text
