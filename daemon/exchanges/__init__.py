"""Adapters over ccxt: account config, per-exchange quirks, client factory, parsing, error translation, actions.

This package may import `daemon.core`; it never imports the app, notifiers, store or simulator.
"""
