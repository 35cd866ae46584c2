"""Clarification (issue 15, item 1): is a new ticket too vague to act on, and what to ask its requester."""
