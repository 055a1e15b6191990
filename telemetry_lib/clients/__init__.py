"""Clients of backend services, shared by the drivers that use them."""
