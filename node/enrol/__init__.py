"""Self-enrolment for test networks: an enrolment service that holds the network root and certifies nodes
presenting a join token (authority, service), and a node's side of it (joining).

Production keeps the root offline and issues certificates by hand (iwlz cert issue); this is for networks of
many replicas built and torn down by testers (docker/, docs/DOCKER.md).
"""
