"""Pictures and pages: figures, the HTML report, the latent explorer, the drawing app."""
