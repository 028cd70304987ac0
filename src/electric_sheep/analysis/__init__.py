"""What a trained model tells: held-out likelihood, new drawings, codes and clusters, anomaly scores."""
