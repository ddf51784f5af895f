"""Helpers shared by the tests: real git repositories, real servers."""
