"""Galaxy Edge Gateway service: public-rest."""
