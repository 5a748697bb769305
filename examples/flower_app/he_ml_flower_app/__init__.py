"""he_ml + Flower deployment example: encrypted FedAvg on real SuperLink/SuperNode processes."""
