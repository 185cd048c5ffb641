"""protocols/amqp091"""
