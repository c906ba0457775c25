"""The Streamlit UI's building blocks (DESIGN §9): API client, texts, charts, page sections.

``app_ui.py`` stays thin; everything here can be tested without a browser.
"""
