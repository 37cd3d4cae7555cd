"""Start the bot process (`python -m bot`)."""

from bot.app import main

if __name__ == "__main__":
    main()
