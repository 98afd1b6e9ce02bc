"""The gateway's device side: configuration (`config`), drivers (`drivers/`, only
`drivers/gpio.py` imports gpiozero), the timer thread they share (`scheduler`) and the
hardware simulator that sits below the drivers (`sim`)."""
