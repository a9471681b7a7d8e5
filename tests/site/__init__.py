"""Checks of the site as a whole: pages, build, browser."""
