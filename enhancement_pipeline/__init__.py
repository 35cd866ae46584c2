"""Ticket-enhancement pipeline: a cited, private note on every new ServiceDesk Plus ticket, run by Dagster."""
