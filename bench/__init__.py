"""Benchmarks for shibwsgi: ``make bench`` or ``python -m bench`` (not part of the test suite).

- :mod:`bench.inprocess`: cost per request in-process, against bare, ProxyFix and Flask baselines,
  with the caches warm (steady state) and off (first sight).
- :mod:`bench.scaling`: how that cost grows with the size of a multi-valued attribute.
- :mod:`bench.memory`: what the caches hold with 2,000 users of 64 KB each.
- :mod:`bench.coldstart`: a new interpreter's import, construction and first request.
- :mod:`bench.fullstack`: Apache + mod_proxy_uwsgi + uWSGI throughput and CPU per request: the bare
  app, behind a plain stateless shibwsgi and behind the movie app's production middleware; then
  :mod:`bench.workerprofile` profiles the workers (``bench/results/fullstack-profile.txt``).
- :mod:`bench.report`: the targets, the table and ``bench/results/latest.{json,txt}``.
"""
