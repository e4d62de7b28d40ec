"""Reference implementations timed against this project: learn2learn's MAML loop and a plain
Betty iMAML loop, each written the way its own documentation shows."""
