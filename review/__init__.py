"""Designer review: approvals of QA'd renders (auto-approval of clean passes for now)."""
