"""Configs of semi-supervised learning and semi-supervised adaptation."""
