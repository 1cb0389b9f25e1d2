"""Menus for the IVR tests."""

from __future__ import annotations

# Two menus that only lead to each other (nodes at the indentation of a menu file's ``nodes``): a loop without
# exit, which a menu must not contain.
DEAD_LOOP = """  loop_a:
    kind: menu
    prompt: {zh: 甲, en: A}
    keys: {"1": loop_b}
    fallback: agent
  loop_b:
    kind: menu
    prompt: {zh: 乙, en: B}
    keys: {"1": loop_a}
    fallback: agent
"""
