"""Designer review: the queue store (``queue``), auto-approvals (``approvals``), what the flow
and server do with the queue (``actions``), reviewer tokens (``auth``) and the web app (``app``)."""
