"""QA stage: technical checks, verdicts and reports (imports without torch)."""

from qa.report import render_report, summary_markdown
from qa.stage import run_qa
from qa.verdicts import QAResult

__all__ = ["QAResult", "render_report", "run_qa", "summary_markdown"]
