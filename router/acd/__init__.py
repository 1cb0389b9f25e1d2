"""Automatic call distribution: agent presence, queues and the assignment of waiting conversations."""
