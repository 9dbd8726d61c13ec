"""Shipped texts per channel, and the stored email texts brought up to date.

(a) The policy ``standard`` gets the shipped text messages, letters and in-app notices
    (dunning/shipped/<language>/<channel>/) of each of its steps and of the thank-you
    message, in every shipped language that has no template of that step, channel and
    language (control variant "") yet.
(b) A stored email template (of any policy) whose subject, text and HTML are still exactly
    an earlier shipped version of its step and language is replaced by the current shipped
    text; one that was edited is left as it is. The earlier versions are known by their
    fingerprints below (taken from the git history of dunning/shipped).

The current texts are read through ``dunning.shipped`` (data that ships with the package).
Going back undoes nothing.
"""

import hashlib

from django.db import migrations
from django.utils import timezone

CHANNELS = ("sms", "letter", "in_app")


def _normal(value):
    # Line breaks as a browser's form sends them (CRLF) and the outer whitespace a form
    # strips do not make a text "edited".
    return (value or "").replace("\r\n", "\n").replace("\r", "\n").strip()


def fingerprint(subject, text, html):
    """sha256 of subject, text and HTML as a template row holds them (normalized)."""
    data = "\n".join((_normal(subject), _normal(text), _normal(html)))
    return hashlib.sha256(data.encode("utf-8")).hexdigest()


#: (language, step key) -> fingerprints of every shipped version of that email message
#: up to this release (its subject, text and HTML as migrations 0002 and 0008 stored them).
EARLIER_VERSIONS = {
    ("de", "account-updater-consent"): (
        "2567afda2a6e79172752d017663b3dfd9dd92784e468c61bd3c6477155c5c580",
        "b010442cc79837cffd49dea62cf62d466c3af1cf6e367603dd375c0888cc02f7",
    ),
    ("de", "card-expiring-30"): (
        "5901a268f35dc2a2d708191a1f92fd1a03112896489d3b57c7122467a9a6c3b2",
        "7ad1b1ca6b73d241ec7f58d14c53f10324e32d7d14d240ebc801edc0b55b1550",
    ),
    ("de", "card-expiring-7"): (
        "0ab365240a149a9524f1435df7bc574a65dd5c2dfc9d3d317c1d45a40b002176",
        "d8afa14480267c99f083569c3cef0ed30d2fb1888c53695e1b44192d2a813786",
    ),
    ("de", "final-notice"): (
        "bc34bb9cab8e77cf81a6470ce441942dee60783f8170ca59c2acf220cca9f29e",
        "21ec39e0991b685c393a3f5a6d1cb1a7f6cb5b2ef1995f6e12b8487730177136",
        "7c0166ae0a85e36ac5303c03fd6b2f8208e737abd01d0b7e19beb80e0e90434b",
    ),
    ("de", "formal-notice"): (
        "0ffed19259de5a9b9098b1708e401ae63885d243f206ae25d5cf0d81b53852d9",
        "8c0ab476335285d25459c2d216e48a22c5a170bec7eaac0b47a58280208831a8",
        "bcef918aac38fde0c367c7120e4f4e952a076565fbf71a438e6243af5a55ad0d",
    ),
    ("de", "gentle-reminder"): (
        "6432da74a71db05714ada036dd1d8125c412a1cfedc9e4de94c2a243f75396e6",
        "7c0178bdd7737565af52a96a2d870d30efed8ebb8d7472bf51ac025db4d98929",
        "8a979e0b46f1a16d72d0baf9fd00ed6b4a2a4c92c71c3d455a66de2660971688",
    ),
    ("de", "initial-notice"): (
        "dd18b4b121f2bdf23de61c0b5c4871bd854005c0342a757e97a21f9d20dda6df",
        "30ca068909c4b5cff08303e4a1a4272a468110c7f3a6fcc99a443d9d23f3382d",
        "ddb4f262894b41bbe8f8ba2a13d4843dcfdff47d77c4b1e8fc4aad5ee2c2b6af",
    ),
    ("de", "payment-received"): (
        "e5b47d08357841493eea6254496fa2beb4990e9e66b69141f3ad5cbc7f9848c9",
        "daea333771498ba542de0488b57f487ca17d94ef844a2af306da741caa3e54fb",
    ),
    ("de", "renewal-card-expiring"): (
        "ea83568ba8728fb54c023da0b42df942f6f98812b55080f8732efcf2dc1a5725",
        "1b2fa16753a365114ad5a6e01cffbda1a46f564094fc5489e52e8dacc5abcc74",
    ),
    ("de", "suspension"): (
        "9948ad15178f7043e053c6aabf0f6df3fe7d37cb0ab17dfc6c7b988e360eb851",
        "ea7c46a890dd8a855de6cd9f315c67c661486d064ae26ff7270f6134b7c5ed0f",
        "2ced35bcf9fcad9be0194eb7d33a427aa19f8460d78e59397e952a2b916626cb",
    ),
    ("de", "suspension-warning"): (
        "598885f755f3db141c150b333158c4f904afa3accacdeba86eed198fff499200",
        "8b393054ec143976ba764eee761662ad7b4b4680dd8bbe4be10a6dabbd99914c",
        "155c9317fefc7db14abe3f52ef9fe3af24aa9c894a143f13417c3c681a055fda",
    ),
    ("de", "termination"): (
        "53e34d30b1b774280430a33ae7695da6949e8a266ccd5f61dfc61eaa0b6a8a0c",
        "4c63486dff80aacf9dec8ede5197c528e2e02c136571c87406c1be8a62944e5f",
        "297ca7f8907dd561c2ff52c349d85886158e80e8c9dbaa020ada87125a7a4d3d",
    ),
    ("en", "account-updater-consent"): (
        "466a0161b43e110b2b99e2fb099e390d22bb6a911d4ed18855fce6f695ff6cbd",
        "af1dcf4a91d818f503328630ea0a2c1c9d6cdb37637eb14108e7196d2fbd2d6c",
    ),
    ("en", "card-expiring-30"): (
        "902a331e13d2284caa152cb3763aa14f47ee3697ff370aaa2171b4813239050a",
        "113ee5e8af923a0aac9097942bca7ee39043de444e083c2d10a5fdd837d73122",
    ),
    ("en", "card-expiring-7"): (
        "6c2f08f20e55392add85c370b0ab93b9ca09d4adbb9e5dba835d377a8e6ed8b3",
        "51b29a885415d98cd05b31c91096d86496ea28e31a68e0eafc3bd6bbaa318844",
    ),
    ("en", "final-notice"): (
        "4898ee11b2e0644f189a6ae16e170a4c18ca709e4c6298a485a70b57ac669ba0",
        "4632af02d44f311733bc30b09e26ef1762a20cb210f6dd070c1727e1aef92488",
        "2fa2b3731003d0e828682ee6f9cf002339862ef5d57f6da6d21cd0568e4c7111",
    ),
    ("en", "formal-notice"): (
        "f0ce90f7e190c888cef23e2d24fb9e21403fb293a23b96b27bb3a9c520dd7c42",
        "1251debd04639e1acfcaf9f6512cfcbdafe9df3a4ea5aa6e6a02e2337778f9d7",
        "cb6081637824ed99f910a8b1c766d5ce6092b16f549ad6b5624fd27e590edc26",
    ),
    ("en", "gentle-reminder"): (
        "7e8917916751a7c69b7a01dc53600d2fa759b5394b84b20ad31c5f4a3ee37ea1",
        "f738a2e5f1ddd81b3b2638183fcd8357d10de0554eae33208fdf4554e46874e2",
        "0d75f3924c1ae588eddbc625a1b7a81663bc10b9304b2eb2b19e6e93f4f817a3",
    ),
    ("en", "initial-notice"): (
        "0d6cf52a4d05247fe92fe2aa09d70368b047c591d967ee6b6ef2c1bd599b998a",
        "bc2903a3425b860c1116b576f3a65a860811016575a4e8388f7b59da2d0d5c5a",
        "1467ae896dd510e6c7e14594f55be12be99911d6e44045aef4c34a6390d7b4f5",
    ),
    ("en", "payment-received"): (
        "ca796e9dd5262b3b2425cf2406ccb76c89d0b295ee898a38c32c10365e7b86c7",
        "c4c236f50bb60c2e61c3f466162acb780e46b06b5692ed3dff38a51c42326b84",
    ),
    ("en", "renewal-card-expiring"): (
        "9df39b32eff363fdedd09fff9d2a4f6aa03141a43ba5cdc3890a9596fa99fab6",
        "97ce99975b3410f4c3969581eda5b617e600f73b0c4e0b54e5a7c95ff239e8d3",
    ),
    ("en", "suspension"): (
        "444b9f0d8b99aee55e4a827eeff04cf319fec43855f9c2a51c9453149cf9c834",
        "f0b6ae01a311eb68607678fc453d829f67c10e8f7255e10242bb0c4cc7552bb2",
        "2978a3cb066edfc9d180e925eeb3f17459bf70c21068826f2cd9d7fba49a05b6",
    ),
    ("en", "suspension-warning"): (
        "a2c658407b8af9c95b97da7560ec8c828a0414f7bae3dd89aa9e04e151fb39bc",
        "1469bf8ef2682c69f545721292e7311392b79817bc6666832100501a916ed7c6",
        "18038de76bdc7953b8d86d57bd7b053174cbc1982a71ed138253f15bda572fad",
    ),
    ("en", "termination"): (
        "1676defa6c6fadb236f26c83cfdff32698db3bcf9854f388e544096c2ccca18b",
        "5c449b198ac64ffe7b8262739ad798aee01ee93f6209963492f954c02a90bbf7",
        "aa3abb497be1f4234d938658bedcbb29cad4a21593624974e3a44c76283781ed",
    ),
}


def install_channel_texts(apps, db):
    from dunning.shipped import LANGUAGES, MESSAGE_KEYS, STANDARD_POLICY, shipped_message

    Policy = apps.get_model("dunning", "Policy")
    Step = apps.get_model("dunning", "Step")
    MessageTemplate = apps.get_model("dunning", "MessageTemplate")
    standard = Policy.objects.using(db).filter(key=STANDARD_POLICY["key"]).first()
    if standard is None:
        return 0
    steps = set(Step.objects.using(db).filter(policy=standard).values_list("key", flat=True))
    keys = [key for key in MESSAGE_KEYS if key in steps or key == "payment-received"]
    existing = set(
        MessageTemplate.objects.using(db)
        .filter(policy=standard, channel__in=CHANNELS, variant="")
        .values_list("step_key", "channel", "language")
    )
    new = []
    for channel in CHANNELS:
        for language in LANGUAGES:
            for key in keys:
                if (key, channel, language) in existing:
                    continue
                shipped = shipped_message(language, key, channel)
                if shipped is None:
                    continue
                subject, text, html = shipped
                new.append(MessageTemplate(
                    policy=standard, step_key=key, channel=channel, language=language,
                    variant="", subject=subject, text_body=text, html_body=html,
                ))
    MessageTemplate.objects.using(db).bulk_create(new)
    return len(new)


def upgrade_untouched_email_texts(apps, db):
    from dunning.shipped import shipped_message

    MessageTemplate = apps.get_model("dunning", "MessageTemplate")
    keys = sorted({key for _language, key in EARLIER_VERSIONS})
    current = {}
    upgraded = 0
    rows = (MessageTemplate.objects.using(db)
            .filter(channel="email", step_key__in=keys)
            .only("pk", "step_key", "language", "subject", "text_body", "html_body")
            .order_by("pk"))
    for template in list(rows):  # read first: SQLite cannot write under an open cursor
        where = (template.language.lower(), template.step_key)
        known = EARLIER_VERSIONS.get(where)
        if not known:
            continue
        if where not in current:
            current[where] = shipped_message(*where)
        shipped = current[where]
        if shipped is None:
            continue
        old = (template.subject, template.text_body, template.html_body)
        if old == shipped or fingerprint(*old) not in known:
            continue  # up to date, or edited: left alone
        template.subject, template.text_body, template.html_body = shipped
        template.updated_at = timezone.now()
        template.save(update_fields=["subject", "text_body", "html_body", "updated_at"])
        upgraded += 1
    return upgraded


def forwards(apps, schema_editor):
    db = schema_editor.connection.alias
    install_channel_texts(apps, db)
    upgrade_untouched_email_texts(apps, db)


class Migration(migrations.Migration):
    dependencies = [
        ("dunning", "0017_customer_history"),
    ]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
