"""What tests share: a service and its key, batch builders, faults, real processes."""
