"""Galaxy Edge Gateway operator: GatewayRoute resources -> the versioned route table."""
