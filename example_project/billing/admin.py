from django.contrib import admin

from .models import Bill, Client

admin.site.register(Client)
admin.site.register(Bill, list_display=["reference", "client", "balance", "currency_code", "payable_by"])
