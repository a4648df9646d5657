"""What a reading keeps: sessions and their key, the labelled-nodule library, fine-tuning."""
